//! The catalogue's file and schema, and the store attached read-only beside it.

use super::*;

/// Each entry moves the catalogue from version `i` to `i + 1`. The catalogue can be
/// rebuilt from the store, so a version it does not know is simply rebuilt.
pub(super) const SCHEMA: &str = "
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
    -- OAI-PMH: every record that was ever public, when its public view last changed
    -- (seconds) and whether it is still shown; kept through a reindex.
    CREATE TABLE IF NOT EXISTS oai (
        reg_no TEXT PRIMARY KEY,
        stamp  INTEGER NOT NULL,
        public INTEGER NOT NULL,          -- 1 shown, 0 deleted
        hash   TEXT,                      -- digest of its public view (NULL: unknown)
        region TEXT NOT NULL,
        kind   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS oai_stamp ON oai (stamp, reg_no);
    CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
        title, keywords, people, abstract,
        content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0'
    );
";

/// The catalogue's schema version, in `meta`.
pub(super) const SCHEMA_VERSION: &str = "2";

pub(super) fn catalogue_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CATALOGUE_FILE)
}

pub(super) fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::store::DB_FILE)
}

/// Attaches the store read-only as `st`.
pub(super) fn attach_store(conn: &Connection, data_dir: &Path) -> Result<()> {
    let uri = format!("file:{}?mode=ro", store_path(data_dir).display());
    conn.execute("ATTACH DATABASE ?1 AS st", [uri]).context("cannot attach the store to the catalogue")?;
    Ok(())
}
