//! The catalogue: a search index and filter columns over the store, in a database of
//! its own (`catalogue.db` beside `huijiao.db`), so indexing never holds a lock the
//! store's writer needs.
//!
//! It is a derived view: the indexer follows the store's change log with its own
//! cursor (kept in the catalogue, committed with what it indexed), catches up after a
//! crash from that cursor, and can be rebuilt from the store at any time (`huijiao
//! reindex`). Queries read the catalogue with the store attached read-only: every
//! body comes from the store, and the public view's checks (公开, not withdrawn, past
//! any embargo) are made on the store's own state, so an index a moment behind never
//! shows a record that is no longer public.

use super::error::{bail, Context, Result, StoreError};
use super::StoredRecord;
use crate::search;
use huijiao_protocol::record::{ip_type, IP_TRADE_SECRET};
use huijiao_protocol::{Date, Record, Secret};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// The catalogue's file in `data_dir`.
pub const CATALOGUE_FILE: &str = "catalogue.db";

/// Each entry moves the catalogue from version `i` to `i + 1`. The catalogue can be
/// rebuilt from the store, so a version it does not know is simply rebuilt.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS docs (
        id            INTEGER PRIMARY KEY,   -- the FTS rowid; grows with indexing order
        reg_no        TEXT NOT NULL UNIQUE,
        origin        TEXT NOT NULL,
        withdrawn     INTEGER NOT NULL,
        state         INTEGER NOT NULL,      -- 0 withdrawn, 1 public, 2 内部, 3 公开 under embargo
        embargo_until TEXT,
        region        TEXT NOT NULL,
        kind          TEXT NOT NULL,
        stage         TEXT,
        level         TEXT,
        discipline    TEXT NOT NULL,
        industry      TEXT,
        transfer      TEXT,
        ip_public     TEXT NOT NULL,         -- ';type;type;' of the public IP entries
        ip_all        TEXT NOT NULL,
        trl           INTEGER,
        reg_date      TEXT NOT NULL,
        year          INTEGER NOT NULL,
        fiscal_funded INTEGER
    );
    CREATE INDEX IF NOT EXISTS docs_date ON docs (reg_date, id);
    CREATE INDEX IF NOT EXISTS docs_region ON docs (region, reg_date);
    CREATE INDEX IF NOT EXISTS docs_state_date ON docs (state, reg_date, id);
    -- Counts by one dimension per county, year and state, kept with the docs: the
    -- statistics tables an office asks for, without scanning millions of records.
    CREATE TABLE IF NOT EXISTS facets (
        dim    TEXT NOT NULL,
        key    TEXT NOT NULL,
        region TEXT NOT NULL,
        year   INTEGER NOT NULL,
        state  INTEGER NOT NULL,
        n      INTEGER NOT NULL,
        PRIMARY KEY (dim, region, year, state, key)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
        title, keywords, people, abstract,
        content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0'
    );
";

/// The catalogue's schema version, in `meta`.
const SCHEMA_VERSION: &str = "2";

fn catalogue_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CATALOGUE_FILE)
}

fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(super::DB_FILE)
}

/// Attaches the store read-only as `st`.
fn attach_store(conn: &Connection, data_dir: &Path) -> Result<()> {
    let uri = format!("file:{}?mode=ro", store_path(data_dir).display());
    conn.execute("ATTACH DATABASE ?1 AS st", [uri]).context("cannot attach the store to the catalogue")?;
    Ok(())
}

/// The catalogue's writer: the indexer.
pub struct Indexer {
    conn: Connection,
    data_dir: PathBuf,
}

/// `docs.state`: what the public may see of a record, as of its indexing (an embargo
/// that passes moves it from 3 to 1: [`sweep_embargoes`]).
const STATE_WITHDRAWN: i64 = 0;
const STATE_PUBLIC: i64 = 1;
const STATE_INTERNAL: i64 = 2;
const STATE_EMBARGOED: i64 = 3;

/// The filter columns of a record.
struct DocCols {
    state: i64,
    ip_public: String,
    ip_all: String,
}

fn doc_cols(r: &Record, withdrawn: bool) -> DocCols {
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
        super::private_file(&path)?;
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

fn set_meta(tx: &rusqlite::Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key, value])?;
    Ok(())
}

/// Empties the catalogue and marks a rebuild of the store's records up to change
/// `upto`; the changes after it are indexed as usual once the rebuild is done.
fn start_rebuild(tx: &rusqlite::Transaction<'_>, upto: i64) -> Result<()> {
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
fn rebuild_step(tx: &rusqlite::Transaction<'_>, upto: i64, max: usize) -> Result<usize> {
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
    } else {
        set_meta(tx, "rebuild_pos", &at.to_string())?;
    }
    Ok(n)
}

/// The statistics dimensions, with the key of each for a docs row
/// (`region, year, kind, stage, industry, transfer, level`).
const FACET_DIMS: [&str; 9] = ["province", "prefecture", "county", "kind", "year", "stage", "industry", "transfer", "level"];

/// The prefecture-level unit a county belongs to: `XXYY00`, or the county itself for
/// one governed by its province directly (`XX90YY`).
fn prefecture_of(region: &str) -> String {
    if region.get(2..3) == Some("9") {
        region.to_string()
    } else {
        format!("{}00", region.get(..4).unwrap_or(region))
    }
}

/// Adds `delta` to the facet counts of the docs row of `reg_no`, as it stands.
fn count_doc(tx: &rusqlite::Transaction<'_>, reg_no: &str, delta: i64) -> Result<()> {
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
fn withdraw_doc(tx: &rusqlite::Transaction<'_>, reg_no: &str) -> Result<()> {
    count_doc(tx, reg_no, -1)?;
    tx.prepare_cached("UPDATE docs SET withdrawn = 1, state = ?2 WHERE reg_no = ?1")?.execute(params![reg_no, STATE_WITHDRAWN])?;
    count_doc(tx, reg_no, 1)?;
    Ok(())
}

/// Makes public the records whose embargo has passed (run with every catch-up).
fn sweep_embargoes(tx: &rusqlite::Transaction<'_>) -> Result<usize> {
    let today = crate::clock::today().to_string();
    let due: Vec<String> = tx
        .prepare_cached("SELECT reg_no FROM docs WHERE state = ?1 AND embargo_until < ?2")?
        .query_map(params![STATE_EMBARGOED, today], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for reg_no in &due {
        count_doc(tx, reg_no, -1)?;
        tx.prepare_cached("UPDATE docs SET state = ?2 WHERE reg_no = ?1")?.execute(params![reg_no, STATE_PUBLIC])?;
        count_doc(tx, reg_no, 1)?;
    }
    Ok(due.len())
}

/// Puts a record's latest version into the catalogue (docs row and search tokens).
fn index_record(tx: &rusqlite::Transaction<'_>, r: &Record, origin: &str, withdrawn: bool) -> Result<()> {
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
    tx.prepare_cached("INSERT INTO fts (rowid, title, keywords, people, abstract) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
        id,
        search::index_text(&r.title),
        search::index_text(&keywords),
        search::index_text(&people.join(" ")),
        search::index_text(&r.r#abstract),
    ])?;
    Ok(())
}

/// Who is asking: the public sees public records and fields only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Only what may be published on `today` (spec §3).
    Public {
        today: Date,
    },
    Operator,
}

/// Conditions every listed record meets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// A region code prefix (`42`, `4201`, `420102`).
    pub region: Option<String>,
    pub kind: Option<String>,
    pub stage: Option<String>,
    pub level: Option<String>,
    pub discipline: Option<String>,
    pub industry: Option<String>,
    pub transfer: Option<String>,
    pub has_ip: Option<bool>,
    pub ip_type: Option<String>,
    pub trl_min: Option<u8>,
    pub trl_max: Option<u8>,
    pub since: Option<Date>,
    pub until: Option<Date>,
    pub fiscal_funded: Option<bool>,
    pub origin: Option<String>,
    pub reg_no: Option<String>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Title matches first, then the rest; newest indexed first within each.
    Relevance,
    /// Latest `reg_date` first.
    Date,
    /// By region code, then by registration number.
    Region,
}

/// A listing request.
#[derive(Debug, Clone)]
pub struct Listing {
    pub q: Option<String>,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    pub cursor: Option<String>,
    pub view: View,
}

/// One listed record: the record, its bookkeeping, and its highlights.
#[derive(Debug, Clone)]
pub struct Hit {
    pub stored: StoredRecord,
    /// The title and a piece of the abstract with the query's terms marked (HTML).
    pub title_html: String,
    pub snippet_html: String,
    /// When neither shows a term: the public fields that matched, marked (HTML), e.g.
    /// `关键词：<mark>水稻</mark>` — why the record is in the list. Empty otherwise.
    pub matched_html: String,
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub hits: Vec<Hit>,
    /// How many records match in all: exact; or a lower bound (`total_capped`): past
    /// [`COUNT_CAP`] matches, or for a rare filter that the counting budget
    /// ([`COUNT_STEPS`]) did not get through; or an estimate (`total_estimated`) of a
    /// search the budget stopped, from the share of the catalogue it had counted.
    pub total: u64,
    pub total_capped: bool,
    pub total_estimated: bool,
    pub next_cursor: Option<String>,
}

/// A listing's total as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Total {
    n: u64,
    capped: bool,
    estimated: bool,
}

/// Counting stops here: a count of every match of a common word over ten million
/// records would cost more than the page itself.
pub const COUNT_CAP: u64 = 10_000;

/// Statistics that scan more records than this split the scan over two connections
/// (in unit tests almost always, so that their counts check the split).
const PARALLEL_SCAN_FROM: i64 = if cfg!(test) { 10 } else { 200_000 };

/// How much work a listing's total may take to count, in steps of SQLite's virtual
/// machine (see [`Catalogue::count`]): enough for 10,000 matches of a search or of a
/// filter an index serves, so that totals under [`COUNT_CAP`] are exact.
pub const COUNT_STEPS: u64 = 400_000;
/// Counting stops after this long whatever its budget (see [`Catalogue::count`]).
const COUNT_SAFETY: std::time::Duration = std::time::Duration::from_millis(250);
/// The progress handler's granularity, in steps.
const COUNT_STEP: u64 = 1000;

/// What statistics group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One level below the region filter; resolved to one of the next three before
    /// a query (by [`crate::publish::parse`]), provinces if not.
    Region,
    Province,
    Prefecture,
    County,
    Kind,
    Year,
    Stage,
    IndustrySection,
    Transfer,
    Level,
}

impl GroupBy {
    fn expr(self) -> &'static str {
        match self {
            GroupBy::Region | GroupBy::Province => "substr(d.region, 1, 2) || '0000'",
            GroupBy::Prefecture => {
                "CASE WHEN substr(d.region, 3, 2) BETWEEN '90' AND '99' THEN d.region ELSE substr(d.region, 1, 4) || '00' END"
            }
            GroupBy::County => "d.region",
            GroupBy::Kind => "d.kind",
            GroupBy::Year => "CAST(d.year AS TEXT)",
            GroupBy::Stage => "coalesce(d.stage, '')",
            GroupBy::IndustrySection => "coalesce(substr(d.industry, 1, 1), '')",
            GroupBy::Transfer => "coalesce(d.transfer, '')",
            GroupBy::Level => "coalesce(d.level, '')",
        }
    }
}

/// A read connection to the catalogue (with the store attached).
pub struct Catalogue {
    conn: Connection,
}

/// A cursor in a listing, opaque to callers: the tier (relevance), the sort key and
/// the doc id of the last record shown.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    tier: u8,
    key: String,
    id: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        let raw = format!("{}\u{1f}{}\u{1f}{}", self.tier, self.key, self.id);
        huijiao_protocol::record::hex(raw.as_bytes())
    }

    fn decode(s: &str) -> Option<Cursor> {
        if s.len() % 2 != 0 || s.len() > 400 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
        let raw = String::from_utf8(bytes?).ok()?;
        let mut parts = raw.split('\u{1f}');
        let tier = parts.next()?.parse().ok()?;
        let key = parts.next()?.to_string();
        let id = parts.next()?.parse().ok()?;
        Some(Cursor { tier, key, id })
    }
}

/// Why a listing cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("cursor: not a cursor this listing gave out")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ListingError {
    fn from(e: rusqlite::Error) -> Self {
        ListingError::Store(e.into())
    }
}

impl ListingError {
    /// Whether the query stopped because [`Catalogue::interrupt_handle`] interrupted it.
    pub fn was_interrupted(&self) -> bool {
        matches!(self, ListingError::Store(e) if e.was_interrupted())
    }
}

/// SQL conditions with their arguments. Placeholders are plain `?`, bound in the
/// order they appear: whatever a query puts before the conditions binds first.
#[derive(Default)]
struct Where {
    sql: String,
    args: Vec<rusqlite::types::Value>,
}

impl Where {
    fn and(&mut self, cond: &str, args: impl IntoIterator<Item = rusqlite::types::Value>) {
        self.args.extend(args);
        self.sql.push_str(" AND ");
        self.sql.push_str(cond);
    }
}

fn text(s: &str) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(s.to_string())
}

fn int(i: i64) -> rusqlite::types::Value {
    rusqlite::types::Value::Integer(i)
}

/// The exclusive upper bound of a prefix range.
fn prefix_end(p: &str) -> String {
    let mut b = p.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn filter_sql(f: &Filters, view: View) -> Where {
    filter_sql_with(f, view, true)
}

/// The whole years `f` covers when it filters on nothing but a region and
/// registration dates from 1 January to 31 December: what the facet counts answer.
fn facet_years(f: &Filters) -> Option<(i64, i64)> {
    let only_region_and_dates = Filters { region: None, since: None, until: None, ..f.clone() } == Filters::default();
    if !only_region_and_dates {
        return None;
    }
    let from = match f.since {
        None => 0,
        Some(d) if d.month == 1 && d.day == 1 => i64::from(d.year),
        Some(_) => return None,
    };
    let to = match f.until {
        None => 9999,
        Some(d) if d.month == 12 && d.day == 31 => i64::from(d.year),
        Some(_) => return None,
    };
    Some((from, to))
}

/// The conditions of `f`; the public view's checks read the store's state (`r`)
/// when `store` (listings), the catalogue's own otherwise (statistics, no join).
fn filter_sql_with(f: &Filters, view: View, store: bool) -> Where {
    let mut w = Where::default();
    if let View::Public { .. } = view {
        // The catalogue's own state first (no store lookup for what it already
        // knows is not public); listings then check the store's. It picks no
        // index (`+`): nearly every record is public, so the order and the other
        // filters choose theirs.
        w.and("+d.state = 1", []);
    }
    if let (View::Public { today }, true) = (view, store) {
        // The store's own state decides, not the index: never more public than now.
        w.and("r.secret = '公开' AND r.withdrawn = 0 AND (r.embargo_until IS NULL OR r.embargo_until < ?)", [text(&today.to_string())]);
    }
    if let Some(p) = f.region.as_deref().filter(|p| !p.is_empty()) {
        w.and("d.region >= ? AND d.region < ?", [text(p), text(&prefix_end(p))]);
    }
    for (col, v) in
        [("d.kind", &f.kind), ("d.stage", &f.stage), ("d.level", &f.level), ("d.transfer", &f.transfer), ("d.origin", &f.origin)]
    {
        if let Some(v) = v {
            w.and(&format!("{col} = ?"), [text(v)]);
        }
    }
    for (col, v) in [("d.discipline", &f.discipline), ("d.industry", &f.industry)] {
        if let Some(p) = v.as_deref().filter(|p| !p.is_empty()) {
            w.and(&format!("{col} >= ? AND {col} < ?"), [text(p), text(&prefix_end(p))]);
        }
    }
    let ip_col = if matches!(view, View::Public { .. }) { "d.ip_public" } else { "d.ip_all" };
    match f.has_ip {
        Some(true) => w.and(&format!("{ip_col} != ''"), []),
        Some(false) => w.and(&format!("{ip_col} = ''"), []),
        None => {}
    }
    if let Some(t) = &f.ip_type {
        w.and(&format!("instr({ip_col}, ?) > 0"), [text(&format!(";{t};"))]);
    }
    if let Some(m) = f.trl_min {
        w.and("d.trl >= ?", [int(i64::from(m))]);
    }
    if let Some(m) = f.trl_max {
        w.and("d.trl <= ?", [int(i64::from(m))]);
    }
    if let Some(d) = f.since {
        w.and("d.reg_date >= ?", [text(&d.to_string())]);
    }
    if let Some(d) = f.until {
        w.and("d.reg_date <= ?", [text(&d.to_string())]);
    }
    if let Some(b) = f.fiscal_funded {
        w.and("d.fiscal_funded = ?", [int(i64::from(b))]);
    }
    if let Some(r) = &f.reg_no {
        w.and("d.reg_no = ?", [text(&r.trim().to_ascii_uppercase())]);
    }
    w
}

/// The columns a hit is read from.
const HIT_COLS: &str = "d.id, d.reg_date, d.region, r.origin, r.version, r.withdrawn, r.updated_at, b.body, l.hops";
/// The catalogue drives (CROSS JOIN): the planner may never start from the store's
/// records and look each up in the catalogue.
const HIT_JOIN: &str =
    "CROSS JOIN st.records r ON r.reg_no = d.reg_no CROSS JOIN st.changes b ON b.seq = r.body_seq CROSS JOIN st.changes l ON l.seq = r.seq";

struct Row {
    id: i64,
    /// The relevance tier the row was found in (0: title match).
    tier: u8,
    reg_date: String,
    region: String,
    hit: Hit,
}

/// A hit from a row of `HIT_COLS`; highlighted for `q` unless `plain` (an export,
/// which shows no HTML).
fn read_row_as(r: &rusqlite::Row<'_>, q: Option<&str>, plain: bool) -> Result<Row> {
    let body: String = r.get(7)?;
    let record = Record::from_json(body.as_bytes()).context("corrupt record body in the store")?;
    let hops: String = r.get(8)?;
    let q = q.unwrap_or("");
    let html = |text: &str, max: usize| if plain { String::new() } else { search::highlight(text, q, max) };
    Ok(Row {
        id: r.get(0)?,
        tier: 0,
        reg_date: r.get(1)?,
        region: r.get(2)?,
        hit: Hit {
            title_html: html(&record.title, 200),
            snippet_html: html(&record.r#abstract, 120),
            matched_html: if plain { String::new() } else { matched_elsewhere(&record, q) },
            stored: StoredRecord {
                record,
                origin: r.get(3)?,
                version: r.get(4)?,
                withdrawn: r.get::<_, i64>(5)? != 0,
                updated_at: r.get(6)?,
                hops: serde_json::from_str(&hops).context("corrupt hop list in the store")?,
            },
        },
    })
}

/// The public fields other than title and abstract where the query's terms that the
/// title and abstract do not hold were found, marked: `关键词：<mark>水稻</mark>…`.
fn matched_elsewhere(r: &Record, q: &str) -> String {
    let has = |text: &str, t: &str| search::highlight(text, t, usize::MAX).contains("<mark>");
    let missing: Vec<&str> = search::terms(q).filter(|t| !has(&r.title, t) && !has(&r.r#abstract, t)).collect();
    if missing.is_empty() {
        return String::new();
    }
    let q = missing.join(" ");
    let mut units = vec![r.first_unit.clone()];
    units.extend(r.units.iter().cloned());
    let mut parts = Vec::new();
    for (label, text) in
        [("关键词", r.keywords.join("；")), ("完成单位", units.join("；")), ("完成人", r.persons.join("；")), ("登记号", r.reg_no.clone())]
    {
        let h = search::highlight(&text, &q, 80);
        if h.contains("<mark>") {
            parts.push(format!("{label}：{h}"));
        }
    }
    parts.join(" · ")
}

fn read_row(r: &rusqlite::Row<'_>, q: Option<&str>) -> Result<Row> {
    read_row_as(r, q, false)
}

impl Catalogue {
    /// Opens the catalogue of the store in `data_dir` for reading.
    pub fn open(data_dir: &Path) -> Result<Catalogue> {
        let path = catalogue_path(data_dir);
        if !path.exists() {
            bail!("no catalogue at {} (has the node run yet? `huijiao reindex` builds one)", path.display());
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the catalogue {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        attach_store(&conn, data_dir)?;
        Ok(Catalogue { conn })
    }

    /// A handle that stops this connection's running query from another thread.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// A page of records.
    pub fn list(&self, l: &Listing) -> Result<Page, ListingError> {
        let cursor = match &l.cursor {
            Some(c) => Some(Cursor::decode(c).ok_or(ListingError::BadCursor)?),
            None => None,
        };
        let expr = l.q.as_deref().and_then(search::match_expr);
        let w = filter_sql(&l.filters, l.view);
        let limit = l.limit.max(1);
        let mut rows: Vec<Row> = Vec::new();
        let mut next = None;
        match (&expr, l.sort) {
            (Some(e), Sort::Relevance) => {
                // Title matches first, then the others, each newest first.
                let tiers = [format!("{{title}} : ({e})"), format!("({e}) NOT {{title}} : ({e})")];
                let start = cursor.as_ref().map_or(0, |c| c.tier);
                for (tier, m) in tiers.iter().enumerate().skip(start as usize) {
                    let below = cursor.as_ref().filter(|c| c.tier as usize == tier).map_or(i64::MAX, |c| c.id);
                    let want = limit + 1 - rows.len();
                    let got = self.fts_page(m, &w, below, want, l.q.as_deref())?;
                    let full = got.len() == want;
                    rows.extend(got.into_iter().map(|r| Row { tier: tier as u8, ..r }));
                    if full {
                        break;
                    }
                }
                if rows.len() > limit {
                    rows.truncate(limit);
                    let last = rows.last().expect("a page");
                    next = Some(Cursor { tier: last.tier, key: String::new(), id: last.id }.encode());
                }
            }
            _ => {
                let (order, after) = match l.sort {
                    Sort::Region => ("d.region ASC, d.id ASC", "(d.region > ? OR (d.region = ? AND d.id > ?))"),
                    _ => ("d.reg_date DESC, d.id DESC", "(d.reg_date < ? OR (d.reg_date = ? AND d.id < ?))"),
                };
                let mut w2 = match (l.sort, l.filters.region.as_deref()) {
                    // Newest first within a province or prefecture: walking the date
                    // index and skipping other regions finds a page after a few
                    // hundred records; the region index would read (and sort) every
                    // record of the province first. A county's own index entries are
                    // already in date order.
                    (Sort::Date | Sort::Relevance, Some(p)) if !p.is_empty() => {
                        let mut w = filter_sql(&Filters { region: None, ..l.filters.clone() }, l.view);
                        if p.len() == 6 {
                            w.and("d.region = ?", [text(p)]);
                        } else {
                            w.and("+d.region >= ? AND +d.region < ?", [text(p), text(&prefix_end(p))]);
                        }
                        w
                    }
                    _ => Where { sql: w.sql.clone(), args: w.args.clone() },
                };
                if let Some(c) = &cursor {
                    w2.and(after, [text(&c.key), text(&c.key), int(c.id)]);
                }
                let fts = match &expr {
                    Some(e) => {
                        w2.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(e)]);
                        ""
                    }
                    None => "",
                };
                let sql =
                    format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN}{fts} WHERE 1 = 1{} ORDER BY {order} LIMIT {}", w2.sql, limit + 1);
                let mut st = self.conn.prepare(&sql)?;
                let mut res = st.query(params_from_iter(w2.args.iter()))?;
                while let Some(r) = res.next()? {
                    rows.push(read_row(r, l.q.as_deref())?);
                }
                if rows.len() > limit {
                    rows.truncate(limit);
                    let last = rows.last().expect("a page");
                    let key = if l.sort == Sort::Region { last.region.clone() } else { last.reg_date.clone() };
                    next = Some(Cursor { tier: 0, key, id: last.id }.encode());
                }
            }
        }
        // Counted on the catalogue's own copy of each record's state (like statistics):
        // no lookup in the store for each of up to COUNT_CAP matches.
        let mut total = match (&expr, facet_years(&l.filters)) {
            // Only a region and whole years: the counters have the exact number.
            (None, Some(years)) => {
                let states = if matches!(l.view, View::Public { .. }) { "(1)" } else { "(1, 2, 3)" };
                let n = self.facet_stats(GroupBy::Kind, l.filters.region.as_deref(), years, states)?.iter().map(|(_, n)| n).sum();
                Total { n, capped: false, estimated: false }
            }
            _ => self.count(expr.as_deref(), &filter_sql_with(&l.filters, l.view, false))?,
        };
        // At least what this page shows (and one more).
        let shown = rows.len() as u64 + u64::from(next.is_some());
        if total.n < shown {
            total = Total { n: shown, capped: total.capped || next.is_some(), estimated: false };
        }
        Ok(Page {
            hits: rows.into_iter().map(|r| r.hit).collect(),
            total: total.n,
            total_capped: total.capped,
            total_estimated: total.estimated,
            next_cursor: next,
        })
    }

    /// Up to `want` matches of `m` below doc id `below`, newest first.
    fn fts_page(&self, m: &str, w: &Where, below: i64, want: usize, q: Option<&str>) -> Result<Vec<Row>> {
        let mut args = vec![text(m), int(below)];
        args.extend(w.args.iter().cloned());
        let sql = format!(
            "SELECT {HIT_COLS} FROM fts CROSS JOIN docs d ON d.id = fts.rowid {HIT_JOIN} WHERE fts MATCH ? AND fts.rowid < ?{} ORDER BY fts.rowid DESC LIMIT {want}",
            w.sql
        );
        let mut st = self.conn.prepare(&sql)?;
        let mut res = st.query(params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = res.next()? {
            out.push(read_row(r, q)?);
        }
        Ok(out)
    }

    /// How many records match, all of them counted (`huijiao query --count`).
    pub fn count_all(&self, q: Option<&str>, f: &Filters, view: View) -> Result<u64> {
        let expr = q.and_then(search::match_expr);
        Ok(self.count_upto(expr.as_deref(), &filter_sql_with(f, view, false), i64::MAX as u64 - 1, None)?.n)
    }

    /// How many records match, counted up to [`COUNT_CAP`] and for at most
    /// [`COUNT_BUDGET`]: a filter no index serves (two rare values together) would
    /// otherwise read every record. Past either, the count is a lower bound.
    fn count(&self, expr: Option<&str>, w: &Where) -> Result<Total> {
        self.count_upto(expr, w, COUNT_CAP, Some(COUNT_STEPS))
    }

    fn count_upto(&self, expr: Option<&str>, w: &Where, cap: u64, steps: Option<u64>) -> Result<Total> {
        // A budget of work, not of time: the same query over the same records always
        // gets the same answer, however busy the node is.
        // Past COUNT_SAFETY of time (a cold cache over millions of records) it stops
        // as well, with the same estimate.
        if let Some(steps) = steps {
            let calls = std::sync::atomic::AtomicU64::new(0);
            let deadline = std::time::Instant::now() + COUNT_SAFETY;
            self.conn.progress_handler(
                COUNT_STEP as i32,
                Some(move || {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 > steps / COUNT_STEP
                        || std::time::Instant::now() > deadline
                }),
            );
        }
        let counted = self.count_rows(expr, w, cap);
        if steps.is_some() {
            self.conn.progress_handler(0, None::<fn() -> bool>);
        }
        let (n, last_id, stopped) = counted?;
        if n > cap {
            return Ok(Total { n: cap, capped: true, estimated: false });
        }
        if !stopped {
            return Ok(Total { n, capped: false, estimated: false });
        }
        // Stopped by the budget: a search walked its matches newest first, from the
        // highest id down to `last_id`; the share of the id range it covered gives an
        // estimate of the whole (once enough were seen to say anything).
        match (expr, last_id) {
            (Some(_), Some(last)) if n >= 100 => {
                let (lo, hi): (i64, i64) = self
                    .conn
                    .query_row("SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM docs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let covered = (hi - last + 1).max(1) as f64;
                let estimate = (n as f64 * (hi - lo + 1).max(1) as f64 / covered).round() as u64;
                if estimate > cap {
                    Ok(Total { n: cap, capped: true, estimated: false })
                } else {
                    Ok(Total { n: estimate.max(n), capped: false, estimated: true })
                }
            }
            _ => Ok(Total { n, capped: true, estimated: false }),
        }
    }

    /// Steps through up to `cap + 1` matches (a search's newest first); returns how many,
    /// the last doc id seen, and `true` when the budget stopped it.
    fn count_rows(&self, expr: Option<&str>, w: &Where, cap: u64) -> Result<(u64, Option<i64>, bool)> {
        let (sql, args) = match expr {
            Some(e) => {
                let cond = &w.sql;
                let mut args = vec![text(e)];
                args.extend(w.args.iter().cloned());
                (
                    format!(
                        "SELECT d.id FROM fts CROSS JOIN docs d ON d.id = fts.rowid WHERE fts MATCH ?{cond} ORDER BY fts.rowid DESC LIMIT {}",
                        cap.saturating_add(1)
                    ),
                    args,
                )
            }
            None => (format!("SELECT d.id FROM docs d WHERE 1 = 1{} LIMIT {}", w.sql, cap.saturating_add(1)), w.args.clone()),
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args.iter()))?;
        let mut n = 0u64;
        let mut last = None;
        loop {
            match rows.next() {
                Ok(Some(r)) => {
                    n += 1;
                    last = Some(r.get::<_, i64>(0)?);
                }
                Ok(None) => return Ok((n, last, false)),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::OperationInterrupted => {
                    return Ok((n, last, true))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One record by registration number, if the view may see it.
    pub fn get(&self, reg_no: &str, view: View) -> Result<Option<Hit>> {
        let f = Filters { reg_no: Some(reg_no.to_string()), ..Filters::default() };
        let w = filter_sql(&f, view);
        let sql = format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN} WHERE 1 = 1{}", w.sql);
        let mut st = self.conn.prepare(&sql)?;
        let mut res = st.query(params_from_iter(w.args.iter()))?;
        match res.next()? {
            Some(r) => Ok(Some(read_row(r, None)?.hit)),
            None => Ok(None),
        }
    }

    /// Counts of the matching records by `by`, in key order.
    pub fn stats(&self, by: GroupBy, q: Option<&str>, f: &Filters, view: View) -> Result<Vec<(String, u64)>> {
        // Withdrawn records are not counted; the public counts public records only.
        let states = match view {
            View::Public { .. } => "(1)",
            View::Operator => "(1, 2, 3)",
        };
        if let (None, Some(years)) = (q, facet_years(f)) {
            return self.facet_stats(by, f.region.as_deref(), years, states);
        }
        let mut w = filter_sql(f, View::Operator);
        if matches!(view, View::Public { .. }) {
            // The public's IP filters look at public entries only.
            w = filter_sql_with(f, view, false);
        }
        // No index (`+`): walking the state index would read every record out of order.
        w.and(&format!("+d.state IN {states}"), []);
        if let Some(e) = q.and_then(search::match_expr) {
            w.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(&e)]);
        }
        let sql =
            |range: &str| format!("SELECT {} AS k, count(*) FROM docs d WHERE 1 = 1{range}{} GROUP BY k ORDER BY k", by.expr(), w.sql);
        // A scan of every record: on a large catalogue, half of it on a second
        // connection and core (ten million records: 1.4 s → 0.8 s). A search is not
        // split: its full-text match, which each half would repeat, is most of its cost.
        let max_id: i64 = self.conn.query_row("SELECT coalesce(max(id), 0) FROM docs", [], |r| r.get(0))?;
        let data_dir = self.conn.path().and_then(|p| Path::new(p).parent().map(Path::to_path_buf));
        if let (None, true, Some(dir)) = (q, max_id > PARALLEL_SCAN_FROM, data_dir) {
            let mid = max_id / 2;
            let (upper, lower) = (sql(&format!(" AND d.id > {mid}")), sql(&format!(" AND d.id <= {mid}")));
            let (a, b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| Catalogue::open(&dir).and_then(|c| c.group_counts(&upper, &w.args)));
                let mine = self.group_counts(&lower, &w.args);
                (mine, other.join().unwrap_or_else(|_| Err(StoreError::Refused("a statistics scan panicked".into()))))
            });
            let mut merged = std::collections::BTreeMap::new();
            for (k, n) in a?.into_iter().chain(b?) {
                *merged.entry(k).or_insert(0) += n;
            }
            return Ok(merged.into_iter().collect());
        }
        self.group_counts(&sql(""), &w.args)
    }

    fn group_counts(&self, sql: &str, args: &[rusqlite::types::Value]) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(args.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Statistics from the facet counts: a region prefix and whole years at most.
    fn facet_stats(&self, by: GroupBy, region: Option<&str>, years: (i64, i64), states: &str) -> Result<Vec<(String, u64)>> {
        let dim = match by {
            GroupBy::Region | GroupBy::Province => "province",
            GroupBy::Prefecture => "prefecture",
            GroupBy::County => "county",
            GroupBy::Kind => "kind",
            GroupBy::Year => "year",
            GroupBy::Stage => "stage",
            GroupBy::IndustrySection => "industry",
            GroupBy::Transfer => "transfer",
            GroupBy::Level => "level",
        };
        let mut w = Where::default();
        w.and("dim = ?", [text(dim)]);
        w.and(&format!("state IN {states}"), []);
        if let Some(p) = region.filter(|p| !p.is_empty()) {
            w.and("region >= ? AND region < ?", [text(p), text(&prefix_end(p))]);
        }
        w.and("year >= ? AND year <= ?", [int(years.0), int(years.1)]);
        let sql = format!("SELECT key, sum(n) FROM facets WHERE 1 = 1{} GROUP BY key HAVING sum(n) > 0 ORDER BY key", w.sql);
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(w.args.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `each` for every matching record in the order this node indexed them
    /// (the order they reached it: the store is then read nearly in its own order,
    /// several times faster than in registration-number order over ten million), without
    /// holding them (an export of ten million rows streams). Withdrawn records are
    /// left out: an export is a submission another node can take in.
    /// `each`'s own error (a write to the reader, say) stops the export and is returned.
    pub fn export<E: From<StoreError>>(
        &self,
        q: Option<&str>,
        f: &Filters,
        view: View,
        mut each: impl FnMut(Hit) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut w = filter_sql(f, view);
        w.and("r.withdrawn = 0", []);
        if let Some(e) = q.and_then(search::match_expr) {
            w.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(&e)]);
        }
        let sql = format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN} WHERE 1 = 1{} ORDER BY d.id", w.sql);
        let mut st = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut res = st.query(params_from_iter(w.args.iter())).map_err(StoreError::from)?;
        let mut n = 0;
        while let Some(r) = res.next().map_err(StoreError::from)? {
            each(read_row_as(r, None, true)?.hit)?;
            n += 1;
        }
        Ok(n)
    }

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
fn lower_priority() {
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
