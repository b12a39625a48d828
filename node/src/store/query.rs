//! Reading the store: queries for `huijiao query`, and the same filters for tools.

use super::error::{Context, Result, StoreError};
use super::open_reader_connection;
use huijiao_protocol::record::RecordState;
use huijiao_protocol::{Date, Kind, Record};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// A read-only view of the store.
pub struct Reader {
    pub(crate) conn: Connection,
}

/// What `huijiao query` can filter on. Every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A region code prefix (`42`, `4201`), or a node's code (`420000` means all of
    /// Hubei, `420100` all of Wuhan, a county code only itself).
    pub region: Option<String>,
    pub kind: Option<Kind>,
    /// `reg_date` on or after.
    pub since: Option<Date>,
    /// `reg_date` on or before.
    pub until: Option<Date>,
    pub reg_no: Option<String>,
    /// A substring of the title, abstract, units, persons or keywords.
    pub text: Option<String>,
    /// Only records the public may see on `today` (spec §3).
    pub public: Option<Date>,
}

/// A record with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub record: Record,
    pub origin: String,
    pub version: i64,
    pub withdrawn: bool,
    /// When this node accepted the latest change, ms since the epoch.
    pub updated_at: i64,
    /// (node, accepted at ms) for each node the latest change passed, origin first.
    pub hops: Vec<(String, i64)>,
}

/// Store-wide counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub node_id: String,
    /// Records held, withdrawn ones included.
    pub records: i64,
    pub withdrawn: i64,
    /// Entries in the change log (every version of every record).
    pub changes: i64,
    pub last_seq: i64,
    pub last_change_at: Option<i64>,
    /// Files in the journal (files that went through row-by-row ingest).
    pub files: i64,
    pub last_file_at: Option<i64>,
}

impl Filter {
    /// The region prefix this filter means: a six-digit code stands for its jurisdiction.
    fn region_prefix(&self) -> Option<String> {
        let r = self.region.as_deref()?.trim();
        Some(if huijiao_protocol::regions::is_six_digits(r) {
            huijiao_protocol::regions::jurisdiction_prefix(r).to_string()
        } else {
            r.to_string()
        })
    }
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        Ok(Reader { conn: open_reader_connection(path)? })
    }

    /// Calls `f` for each matching record, ordered by `reg_no`, without holding them
    /// all; `f`'s own error (a write to the reader, say) stops the scan and is returned.
    pub fn for_each<E: From<StoreError>>(&self, filter: &Filter, mut f: impl FnMut(StoredRecord) -> Result<(), E>) -> Result<u64, E> {
        let mut sql = String::from(
            "SELECT r.origin, r.version, r.withdrawn, r.updated_at, b.body, l.hops
             FROM records r JOIN changes b ON b.seq = r.body_seq JOIN changes l ON l.seq = r.seq WHERE 1 = 1",
        );
        let mut args: Vec<String> = Vec::new();
        let mut arg = |sql: &mut String, cond: &str, v: String| {
            args.push(v);
            sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
        };
        if let Some(prefix) = filter.region_prefix().filter(|p| !p.is_empty()) {
            let mut upper = prefix.clone().into_bytes();
            if let Some(last) = upper.last_mut() {
                *last += 1;
            }
            // A reg_no starts with its record's region code (validation and the sync
            // checks enforce it), so the primary-key index on reg_no serves region
            // prefixes and no separate region index is kept.
            let upper = String::from_utf8_lossy(&upper).into_owned();
            arg(&mut sql, " AND r.reg_no >= ?", prefix.clone());
            arg(&mut sql, " AND r.reg_no < ?", upper.clone());
            arg(&mut sql, " AND r.region >= ?", prefix);
            arg(&mut sql, " AND r.region < ?", upper);
        }
        if let Some(k) = filter.kind {
            arg(&mut sql, " AND r.kind = ?", k.zh().to_string());
        }
        if let Some(d) = filter.since {
            arg(&mut sql, " AND r.reg_date >= ?", d.to_string());
        }
        if let Some(d) = filter.until {
            arg(&mut sql, " AND r.reg_date <= ?", d.to_string());
        }
        if let Some(r) = &filter.reg_no {
            arg(&mut sql, " AND r.reg_no = ?", r.trim().to_ascii_uppercase());
        }
        if let Some(today) = filter.public {
            arg(
                &mut sql,
                " AND r.secret = '公开' AND r.withdrawn = 0 AND (r.embargo_until IS NULL OR r.embargo_until < ?)",
                today.to_string(),
            );
        }
        sql.push_str(" ORDER BY r.reg_no");
        let mut st = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut rows = st.query(rusqlite::params_from_iter(args.iter())).map_err(StoreError::from)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            let body: String = row.get(4).map_err(StoreError::from)?;
            let record = Record::from_json(body.as_bytes()).context("corrupt record body in the store")?;
            if let Some(text) = &filter.text {
                if !record.search_text_matches(text.trim(), filter.public.is_some()) {
                    continue;
                }
            }
            let hops: String = row.get(5).map_err(StoreError::from)?;
            let read = || -> Result<StoredRecord> {
                Ok(StoredRecord {
                    record,
                    origin: row.get(0)?,
                    version: row.get(1)?,
                    withdrawn: row.get::<_, i64>(2)? != 0,
                    updated_at: row.get(3)?,
                    hops: serde_json::from_str(&hops).context("corrupt hop list in the store")?,
                })
            };
            let stored = read()?;
            n += 1;
            f(stored)?;
        }
        Ok(n)
    }

    /// All matching records (tests and small results).
    pub fn query(&self, filter: &Filter) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        self.for_each(filter, |r| {
            out.push(r);
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// One record by `reg_no`.
    pub fn get(&self, reg_no: &str) -> Result<Option<StoredRecord>> {
        Ok(self.query(&Filter { reg_no: Some(reg_no.to_string()), ..Filter::default() })?.into_iter().next())
    }

    /// The number of records (withdrawn ones included).
    pub fn record_count(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?)
    }

    /// Counts for `huijiao status`.
    pub fn status(&self) -> Result<StoreStatus> {
        let (records, withdrawn): (i64, i64) =
            self.conn.query_row("SELECT count(*), coalesce(sum(withdrawn), 0) FROM records", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // The log is never pruned and its seq is dense, so its length is its last seq:
        // no scan of a table of a million 1 KiB rows.
        let (last_seq, last_change_at): (i64, Option<i64>) = self
            .conn
            .query_row("SELECT seq, accepted_at FROM changes ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, None));
        let changes = last_seq;
        let (files, last_file_at): (i64, Option<i64>) =
            self.conn.query_row("SELECT count(*), max(received_at) FROM files", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(StoreStatus { node_id: self.node_id()?, records, withdrawn, changes, last_seq, last_change_at, files, last_file_at })
    }

    /// Files committed but not yet moved and reported (a crash, or a full disk).
    /// The `limit` files handled last: (name, received at ms, where it went, report).
    pub fn recent_files(&self, limit: usize) -> Result<Vec<(String, i64, String, serde_json::Value)>> {
        let mut st =
            self.conn.prepare("SELECT name, received_at, dest, report FROM files ORDER BY received_at DESC, rowid DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, at, dest, report) = row?;
            out.push((name, at, dest, serde_json::from_str(&report).unwrap_or_default()));
        }
        Ok(out)
    }

    /// When this node accepted the first change after `seq` (the oldest one its parent
    /// has not acknowledged), ms.
    pub fn accepted_at_after(&self, seq: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row("SELECT accepted_at FROM changes WHERE seq > ?1 ORDER BY seq LIMIT 1", [seq], |r| r.get(0)).optional()?)
    }

    pub fn unfinished_files(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM files WHERE moved = 0", [], |r| r.get(0))?)
    }

    /// The state of every record, for audits.
    pub fn record_states(&self) -> Result<Vec<RecordState>> {
        let mut st = self.conn.prepare("SELECT reg_no, origin, version, hash, withdrawn FROM records")?;
        let rows = st.query_map([], |r| {
            Ok(RecordState {
                reg_no: r.get(0)?,
                origin: r.get(1)?,
                version: r.get(2)?,
                hash: r.get(3)?,
                withdrawn: r.get::<_, i64>(4)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (reg_no, version, times) of changes logged more than once: never, if delivery
    /// is exactly once.
    pub fn duplicate_changes(&self) -> Result<Vec<(String, i64, i64)>> {
        let mut st = self.conn.prepare("SELECT reg_no, version, count(*) FROM changes GROUP BY reg_no, version HAVING count(*) > 1")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (reg_no, accepted at the origin, accepted here) of every record's latest change,
    /// from its provenance, for latency figures.
    pub fn arrival_times(&self) -> Result<Vec<(String, i64, i64)>> {
        let mut st = self.conn.prepare("SELECT c.reg_no, c.hops, c.accepted_at FROM records r JOIN changes c ON c.seq = r.seq")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (reg_no, hops, here) = row?;
            let hops: Vec<(String, i64)> = serde_json::from_str(&hops).context("corrupt hop list in the store")?;
            out.push((reg_no, hops.first().map_or(here, |h| h.1), here));
        }
        Ok(out)
    }

    /// The node this store belongs to.
    pub fn node_id(&self) -> Result<String> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'node_id'", [], |r| r.get(0))?)
    }
}
